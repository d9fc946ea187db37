#!/usr/bin/env bash
# Makes sure Debian's camera test servers are installed: the GStreamer RTSP server with Python
# bindings (scripts/rtsp_server.py runs under /usr/bin/python3) and Aravis's introspection data
# (genicam:// sources; scripts/gige_camera.py runs its fake GigE Vision camera without the GTK tools). Installs them with apt-get when missing
# (about 40 MB of downloads on a fresh Debian 12). Needs root, as CI has; otherwise says what to run.
set -euo pipefail
packages=(python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base
          gstreamer1.0-plugins-good gir1.2-aravis-0.8)
probe='import gi; gi.require_version("GstRtspServer", "1.0"); gi.require_version("Aravis", "0.8")
from gi.repository import GstRtspServer, Aravis, Gst; Gst.init(None)
assert Gst.ElementFactory.find("jpegenc") and Gst.ElementFactory.find("rtpjpegpay")'
if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c "$probe" 2>/dev/null; then
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "cameras: the camera test servers are missing and this is not root: run  sudo apt-get install -y ${packages[*]}" >&2
  exit 1
fi
echo "cameras: installing Debian's GStreamer RTSP server and Aravis for the camera tests (apt-get, once)"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
/usr/bin/python3 -c "$probe"
echo "cameras: installed in $(( $(date +%s) - start )) s"
