"""`linewatch-models`: train, calibrate, evaluate, export and manage models in a store.

    linewatch-models train DATA --name NAME [--arch draem_small] [--set k=v ...] [--time-budget MIN] [--target-far 0.001]
    linewatch-models calibrate REF --normal DIR [--defects MVTEC_DIR] [--camera cam=0.6 ...] [--target-far 0.001]
    linewatch-models calibrate REF --from-stream CAM[,CAM...] [--frames N] [--outliers refuse|exclude|include]
    linewatch-models evaluate REF MVTEC_DIR [--report DIR] [--shift]
    linewatch-models list | show REF | promote REF ALIAS | rollback NAME ALIAS | delete REF
    linewatch-models shadow start CANDIDATE [--against REF] [--cameras CAM,...] [--fraction F] | stop CANDIDATE | status
                                                                              (model_store/shadow_plans.py)
    linewatch-models shadow report CANDIDATE [--against REF] [--cameras CAM,...] [--json]   (model_store/shadow.py)
    linewatch-models promote CANDIDATE [--to ALIAS] --require-shadow [--against REF] [--cameras CAM,...]
    linewatch-models export REF --out DIR
    linewatch-models recipes list | show NAME | history | set NAME --model REF [--roi x,y,w,h ...]
                     [--threshold T] [--debounce N/M] | delete NAME | assign CAMERA|PATTERN NAME
                     | unassign CAMERA|PATTERN | revert CHANGE     (model_store/recipes.py)

The store root is --store, else $LW_MODEL_ROOT (the worker's setting), else ./models; the other
defaults come from LW_* variables too (model_store/settings.py). Output is JSON on stdout where a
script might read it; logs and warnings go to stderr (warnings are also in the JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import structlog

from linewatch.errors import LinewatchError

log = structlog.get_logger(__name__)


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"--set wants key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw  # bare strings (paths) need no quotes
    return out


def _settings():
    from pydantic import ValidationError

    from linewatch.errors import ConfigError
    from model_store.settings import ModelsSettings

    try:
        return ModelsSettings()
    except ValidationError as exc:
        raise ConfigError(f"linewatch-models settings: {exc}") from exc


def _rate(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _store(args: argparse.Namespace):
    from model_store.store import ModelStore

    return ModelStore(Path(args.store) if args.store else _settings().model_root)


def _promise(args: argparse.Namespace) -> tuple[float, float]:
    """(target false-alarm rate, confidence): the flags, else the settings."""
    settings = _settings()
    target = args.target_far if args.target_far is not None else settings.target_far
    confidence = args.confidence if args.confidence is not None else settings.calibration_confidence
    return target, confidence


def _warnings(cal: Any) -> list[str]:
    from model_store.calibration import shortfall

    warning = shortfall(cal) if cal is not None else None
    return [warning] if warning else []


def _jsonable(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic models (manifest parts)
    return dump(mode="json") if dump else str(obj)


def _emit(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_jsonable))


def _threads(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)  # the anomaly simulation's cv2 calls must not use more cores than asked


# ---- commands -------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from model_store.pipeline import TrainRequest, train_and_publish

    _threads(args)
    req = TrainRequest(
        data=Path(args.data),
        name=args.name,
        arch=args.arch,
        kwargs=_parse_sets(args.set),
        input_size=parse_size(args.input_size),
        batch_size=args.batch_size,
        lr=args.lr,
        max_steps=args.steps,
        time_budget_s=args.time_budget * 60 if args.time_budget else None,
        cpu_budget_s=args.cpu_budget * 60 if args.cpu_budget else None,
        seed=args.seed,
        photometric=args.photometric,
        device=args.device,
        calib_fraction=args.calib_fraction,
        checkpoint=Path(args.checkpoint) if args.checkpoint else Path("runs") / "checkpoints" / f"{args.name}.safetensors",
        resume=args.resume,
        checkpoint_every_s=args.checkpoint_every,
        alias=args.alias,
        max_images=args.max_images,
        show_progress=not args.no_progress,
    )
    req.target_far, req.confidence = _promise(args)
    manifest = train_and_publish(_store(args), req)
    _emit({"model": manifest.name, "version": manifest.version, "calibration": manifest.calibration,
           "warnings": _warnings(manifest.calibration), "training": manifest.training})


def cmd_calibrate(args: argparse.Namespace) -> int:
    from model_store.pipeline import recalibrate

    _threads(args)
    store = _store(args)
    cams = {k: float(v) for k, v in _parse_sets(args.camera).items()}
    target, confidence = _promise(args)
    if args.from_stream:
        if args.normal or cams:
            raise SystemExit("calibrate: --from-stream fits the version that served the frames; give it alone")
        return _calibrate_from_stream(args, store, target, confidence)
    if args.normal:
        m = recalibrate(store, args.ref, Path(args.normal), Path(args.defects) if args.defects else None, args.device, target, confidence)
        ref = f"{m.name}@{m.version}"
        out: dict[str, Any] = {"model": m.name, "version": m.version, "parent": m.parent_version, "calibration": m.calibration,
                               "warnings": _warnings(m.calibration)}
    else:
        ref, out = args.ref, {}
    if cams:
        store.set_camera_thresholds(ref, cams)
        out["camera_thresholds"] = cams
    if not out:
        raise SystemExit("calibrate: give --normal DIR, --from-stream CAM[,CAM...] and/or --camera cam=threshold")
    _emit(out)
    return 0


def _calibrate_from_stream(args: argparse.Namespace, store: Any, target: float, confidence: float) -> int:
    """Per-camera thresholds from the scores the workers served; exit status 3 when a camera was refused."""
    import redis

    from linewatch.contract import RedisKeys
    from model_store.commissioning import StreamRequest, commission

    settings = _settings()
    cameras = [c.strip() for c in args.from_stream.split(",") if c.strip()]
    if not cameras:
        raise SystemExit("calibrate: --from-stream needs at least one camera id")
    url = args.redis_url or settings.redis_url
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10, **settings.redis_client_kwargs())
    keys = RedisKeys(args.redis_prefix or settings.redis_prefix)
    req = StreamRequest(args.ref, cameras, args.frames or settings.calibration_frames, target, confidence, args.outliers)
    try:
        out = commission(store, client, keys, req)
    finally:
        client.close()
    _emit(out)
    return 3 if any(c["status"] == "refused" for c in out["cameras"]) else 0


def cmd_evaluate(args: argparse.Namespace) -> None:
    from model_store.evaluation import evaluate_ref

    _threads(args)
    report = Path(args.report) if args.report else None
    confidence = args.confidence if args.confidence is not None else _settings().calibration_confidence
    names = [n for n in (args.shifts or "").split(",") if n] or None
    _emit(evaluate_ref(_store(args), args.ref, Path(args.data), args.device, report, args.max_images, args.simulated, confidence,
                       shift=args.shift or bool(names), shift_seed=args.shift_seed, shift_names=names,
                       max_defects_per_type=args.max_defect_images))


def cmd_list(args: argparse.Namespace) -> None:
    store = _store(args)
    rows = []
    for name in store.models():
        aliases = store.aliases(name)
        for v in store.versions(name):
            m = store.manifest(f"{name}@{v}")
            rows.append({
                "model": name, "version": v, "arch": m.architecture, "created": m.created_at,
                "aliases": sorted(a for a, t in aliases.items() if t == v),
                "evaluations": {ds: {k: e.get(k) for k in ("image_auroc", "pixel_auroc", "pixel_ap")}
                                for ds, e in store.evaluations(name, v).items()},
            })
    _emit(rows)


def cmd_show(args: argparse.Namespace) -> None:
    store = _store(args)
    name, version = store.resolve(args.ref)
    out = json.loads(store.manifest(f"{name}@{version}").model_dump_json())
    out["aliases"] = store.aliases(name)
    out["alias_evidence"] = {a: ev for a in out["aliases"] if (ev := store.alias_evidence(name, a))}  # gated promotions
    out["camera_thresholds"] = store.camera_thresholds(name, version)
    out["evaluations"] = store.evaluations(name, version)
    _emit(out)


def cmd_promote(args: argparse.Namespace) -> int:
    """Move the alias; with --require-shadow only when the shadow gate passes (exit 3 and the failed conditions if not)."""
    store = _store(args)
    name, version = store.resolve(args.ref)
    if args.to and args.alias and args.to != args.alias:
        raise SystemExit(f"promote: alias given twice ({args.alias!r} and --to {args.to!r})")
    alias = args.to or args.alias or "production"
    if not args.require_shadow:
        store.promote(name, version, alias)
        _emit({"model": name, "alias": alias, "version": version})
        return 0
    report, policy = _shadow_report(args, store, f"{name}@{version}", args.against or f"{name}@{alias}")
    from model_store.shadow import gate

    passed, failed = gate(report, policy)
    out: dict[str, Any] = {"model": name, "alias": alias, "version": version, "gate": _gate_json(passed, failed, policy),
                           "report": report.summary()}
    if not passed:
        for f in failed:
            print(f"promote refused: {f}", file=sys.stderr)
        _emit({"refused": True, **out})
        return 3
    store.promote(name, version, alias, evidence={"shadow": report.summary(), "gate": _gate_json(passed, failed, policy)})
    from model_store.shadow_plans import ShadowBook, ShadowRefused

    try:  # the candidate is production now: shadowing it against itself would compare nothing
        out["shadow_stopped"] = ShadowBook(store.backend).stop(f"{name}@{version}").candidate
    except ShadowRefused:
        pass
    _emit(out)
    return 0


def _gate_json(passed: bool, failed: list[Any], policy: Any) -> dict[str, Any]:
    return {"passed": passed, "failed": [{"condition": f.condition, "figure": f.figure, "bound": f.bound, "detail": f.detail}
                                         for f in failed],
            "policy": {"min_frames": policy.min_frames, "far_bound": policy.far_bound, "bound_source": policy.bound_source,
                       "max_missed_confirmed": policy.max_missed_confirmed, "cameras": list(policy.cameras)}}


def _shadow_report(args: argparse.Namespace, store: Any, candidate: str, against: str) -> tuple[Any, Any]:
    """(Report, GatePolicy) from the shadow streams of the resolved candidate against the resolved production."""
    import redis

    from linewatch.contract import RedisKeys
    from linewatch.errors import ServiceUnavailable
    from model_store.shadow import GatePolicy, build_report, policy_bound, read_feedback, read_pairs, shadow_cameras

    settings = _settings()
    cand = "{}@{}".format(*store.resolve(candidate))
    prod_name, prod_version = store.resolve(against)
    prod = f"{prod_name}@{prod_version}"
    far, source = policy_bound(store.manifest(prod).calibration, settings.target_far)
    confidence = args.confidence if args.confidence is not None else settings.calibration_confidence
    cameras = [c.strip() for c in (args.cameras or "").split(",") if c.strip()]
    client = redis.Redis.from_url(args.redis_url or settings.redis_url, decode_responses=True, socket_timeout=10,
                                  **settings.redis_client_kwargs())
    keys = RedisKeys(args.redis_prefix or settings.redis_prefix)
    try:
        pairs, unreadable = read_pairs(client, keys, cand, cameras or shadow_cameras(client, keys, cand),
                                       args.frames or settings.shadow_frames)
        verdicts = read_feedback(client, keys)
    except redis.RedisError as exc:  # unreachable Redis or a key of another type: a reason, not a traceback
        raise ServiceUnavailable(f"shadow streams of {cand} could not be read: {exc}") from exc
    finally:
        client.close()
    report = build_report(pairs, verdicts, cand, prod, confidence, {"unreadable": unreadable})
    policy = GatePolicy(settings.shadow_min_frames, far, f"{source} of {prod}", settings.shadow_max_missed_confirmed,
                        tuple(cameras))
    return report, policy


def cmd_shadow_plan(args: argparse.Namespace) -> None:
    """shadow start / stop / status: the plans workers read (model_store/shadow_plans.py)."""
    import getpass

    from model_store.shadow_plans import ShadowBook, ShadowRefused

    store = _store(args)
    book = ShadowBook(store.backend, resolve=store.resolve)
    try:
        if args.shadow_cmd == "start":
            cameras = [c.strip() for c in (args.cameras or "").split(",") if c.strip()]
            name, _ = store.resolve(args.candidate)
            recipes = [r.strip() for r in (args.recipes or "").split(",") if r.strip()]
            from model_store.recipes import RecipeBook

            unknown = sorted(set(recipes) - set(RecipeBook(store.backend).table().recipes))
            if unknown:
                raise ShadowRefused(f"no recipe {', '.join(unknown)} in the line's table")
            plan = book.start(args.candidate, args.against or f"{name}@production", cameras, args.fraction,
                              args.author or getpass.getuser(), recipes)
            _emit({"started": plan.model_dump(mode="json")})
        elif args.shadow_cmd == "stop":
            _emit({"stopped": book.stop(args.candidate).model_dump(mode="json")})
        else:
            _emit({"shadows": [p.model_dump(mode="json") for p in book.plans().plans.values()]})
    except ShadowRefused as exc:
        raise SystemExit(f"shadow {args.shadow_cmd} refused: {exc}") from None


def cmd_shadow(args: argparse.Namespace) -> int:
    from model_store.shadow import gate

    store = _store(args)
    name, _ = store.resolve(args.candidate)
    report, policy = _shadow_report(args, store, args.candidate, args.against or f"{name}@production")
    passed, failed = gate(report, policy)
    if args.json:
        _emit({**report.to_json(), "gate": _gate_json(passed, failed, policy)})
        return 0
    verdict = "passes" if passed else "fails:\n  " + "\n  ".join(str(f) for f in failed)
    print(f"{report.text()}\n\npromotion gate (min {policy.min_frames} frames per camera, alarm bound <= "
          f"{policy.far_bound:g} from the {policy.bound_source}) {verdict}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> None:
    version = _store(args).rollback(args.name, args.alias)
    _emit({"model": args.name, "alias": args.alias, "version": version})


def cmd_delete(args: argparse.Namespace) -> None:
    store = _store(args)
    name, version = store.resolve(args.ref)
    store.delete(name, version, force=args.force)
    _emit({"deleted": f"{name}@{version}"})


def cmd_export(args: argparse.Namespace) -> None:
    from model_store.export import export_ref

    _threads(args)
    _emit(export_ref(_store(args), args.ref, Path(args.out), args.batch, args.atol))


def cmd_recipes(args: argparse.Namespace) -> None:
    import getpass

    from model_store.recipes import Recipe, RecipeBook, RecipeRefused, Region, route

    store = _store(args)
    book = RecipeBook(store.backend, resolve=store.resolve)
    author = args.author or getpass.getuser()
    action = args.action
    if action == "list":
        table = book.table()
        _emit({"seq": table.seq, "recipes": sorted(table.recipes), "assignments": table.assignments})
    elif action == "show":
        table = book.table()
        if args.name in table.recipes:
            _emit(table.recipes[args.name].model_dump(mode="json"))
        else:  # a camera: which recipe routes it
            _emit({"camera": args.name, "recipe": route(args.name, table.assignments, table.recipes)})
    elif action == "history":
        _emit(book.history(args.limit))
    elif action == "set":
        try:
            regions = [Region(**dict(zip("xywh", (int(v) for v in roi.split(","))))) for roi in args.roi]
            if any(len(roi.split(",")) != 4 for roi in args.roi):
                raise ValueError("a region is X,Y,W,H")
            debounce = tuple(int(v) for v in args.debounce.split("/")) if args.debounce else None
            recipe = Recipe(name=args.name, model=args.model, regions=tuple(regions), threshold=args.threshold,
                            debounce=debounce, note=args.note)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError: its text names the field
            raise RecipeRefused(f"recipe {args.name}: {exc}") from None
        _emit({"seq": book.set_recipe(recipe, author), "recipe": recipe.model_dump(mode="json")})
    elif action == "delete":
        _emit({"seq": book.delete_recipe(args.name, author), "deleted": args.name})
    elif action == "assign":
        _emit({"seq": book.assign(args.camera, args.name, author), "assigned": {args.camera: args.name}})
    elif action == "unassign":
        _emit({"seq": book.unassign(args.camera, author), "unassigned": args.camera})
    elif action == "revert":
        _emit({"seq": book.revert(args.change, author), "reverted": args.change})


def _recipe_parser(sub: Any) -> None:
    r = sub.add_parser("recipes", help="the line's recipes: which model and regions each camera's frames go through")
    r.add_argument("--author", default=None, help="recorded with the change (default: the login name)")
    rs = r.add_subparsers(dest="action", required=True)
    rs.add_parser("list", help="recipes and assignments")
    show = rs.add_parser("show", help="a recipe, or the recipe a camera is routed to")
    show.add_argument("name", help="recipe name or camera id")
    h = rs.add_parser("history", help="the newest changes, newest first")
    h.add_argument("--limit", type=int, default=50)
    st = rs.add_parser("set", help="create or replace a recipe (the model reference must resolve in the store)")
    st.add_argument("name")
    st.add_argument("--model", required=True, help="name@alias or name@version")
    st.add_argument("--roi", action="append", default=[], metavar="X,Y,W,H", help="region of interest in frame pixels; repeatable")
    st.add_argument("--threshold", type=_rate, default=None, help="normalised threshold override")
    st.add_argument("--debounce", default=None, metavar="N/M", help="alert when N of the last M frames are anomalous")
    st.add_argument("--note", default="")
    d = rs.add_parser("delete", help="delete a recipe (refused while assigned)")
    d.add_argument("name")
    a = rs.add_parser("assign", help="route a camera id or glob pattern (press-*) to a recipe")
    a.add_argument("camera")
    a.add_argument("name")
    u = rs.add_parser("unassign", help="remove a camera's or pattern's assignment")
    u.add_argument("camera")
    rv = rs.add_parser("revert", help="restore the table as it was before a change (a new change)")
    rv.add_argument("change", type=int)
    r.set_defaults(fn=cmd_recipes)


# ---- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="linewatch-models", description=__doc__.split("\n\n")[0])
    p.add_argument("--store", help="store root (default $LW_MODEL_ROOT, the worker's setting, or ./models)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a new model version on a folder of normal images")
    t.add_argument("data", help="MVTec category folder (<cat>/train/good) or a flat folder of normal images")
    t.add_argument("--name", required=True, help="model name in the store")
    t.add_argument("--arch", default="draem_small", help="registered architecture (see `list-archs`)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model kwarg (JSON value); repeatable")
    t.add_argument("--input-size", default="128", help="H or HxW (default 128)")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=None, help="default: the architecture's")
    t.add_argument("--steps", type=int, default=None, help="max optimizer steps")
    t.add_argument("--time-budget", type=float, default=None, help="wall-clock minutes (training only)")
    t.add_argument("--cpu-budget", type=float, default=None,
                   help="CPU minutes of the training process (training only; the same steps under any load)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--photometric", type=float, default=0.0, metavar="S",
                   help="lighting augmentation of the normal images, strength S (0.3: gain 1 +- 0.3 ...; model_store/lighting.py); 0 = off")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    t.add_argument("--calib-fraction", type=float, default=0.1, help="normal train images held out to auto-calibrate")
    t.add_argument("--checkpoint", default=None, help="checkpoint file (default runs/checkpoints/<name>.safetensors)")
    t.add_argument("--checkpoint-every", type=float, default=120.0, help="seconds between checkpoints")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    t.add_argument("--alias", default=None, help="promote the new version to this alias")
    t.add_argument("--max-images", type=int, default=None, help="use only the first N training images (tests)")
    t.add_argument("--no-progress", action="store_true")
    _promise_flags(t)
    t.set_defaults(fn=cmd_train)

    c = sub.add_parser("calibrate", help="new version with thresholds from normal (and defect) images; camera overrides")
    c.add_argument("ref", help="name, name@version or name@alias")
    c.add_argument("--normal", help="folder of normal validation images (MVTec test/good or flat)")
    c.add_argument("--defects", help="MVTec category folder: its test defects make the threshold F1-optimal")
    c.add_argument("--camera", action="append", default=[], metavar="CAM=THR", help="normalised threshold override")
    c.add_argument("--from-stream", metavar="CAM[,CAM...]",
                   help="fit these cameras' thresholds from the raw scores the workers served for REF (Redis history)")
    c.add_argument("--frames", type=int, default=None, help="newest frames per camera to use (default $LW_CALIBRATION_FRAMES, 3000)")
    c.add_argument("--outliers", choices=["refuse", "exclude", "include"], default="refuse",
                   help="a camera whose window holds obvious outliers: refuse it (default), fit without them, or keep them")
    c.add_argument("--redis-url", default=None, help="Redis with the workers' results (default $LW_REDIS_URL)")
    c.add_argument("--redis-prefix", default=None, help="key prefix the workers write under (default $LW_REDIS_PREFIX, lw)")
    c.add_argument("--device", default="cpu")
    _promise_flags(c)
    c.set_defaults(fn=cmd_calibrate)

    e = sub.add_parser("evaluate", help="image/pixel AUROC and pixel AP on an MVTec-layout test set")
    e.add_argument("ref")
    e.add_argument("data", help="MVTec category folder with test/ and ground_truth/")
    e.add_argument("--report", help="folder for report.json, report.html and images")
    e.add_argument("--device", default="cpu")
    e.add_argument("--max-images", type=int, default=None, help="first N images per test type (smoke tests)")
    e.add_argument("--max-defect-images", type=int, default=None,
                   help="first N images per defect type, all good images (cheaper measurements; false alarms keep every good image)")
    e.add_argument("--simulated", action="store_true", help="also score test/good with simulated anomalies (diagnostic)")
    e.add_argument("--confidence", type=_rate, default=None,
                   help="confidence of the intervals at the calibrated threshold (default $LW_CALIBRATION_CONFIDENCE, 0.95)")
    e.add_argument("--shift", action="store_true",
                   help="also under each lighting shift of model_store/lighting.py (EVAL_SHIFTS), at the unshifted threshold")
    e.add_argument("--shifts", default=None, metavar="NAME,...", help="only these shifts (implies --shift), e.g. brightness+20%%")
    e.add_argument("--shift-seed", type=int, default=0, help="seed of the per-image side-lamp directions")
    e.set_defaults(fn=cmd_evaluate)

    sub.add_parser("list", help="models, versions, aliases").set_defaults(fn=cmd_list)
    sub.add_parser("list-archs", help="registered architectures").set_defaults(fn=lambda a: _emit(_archs()))
    s = sub.add_parser("show", help="a version's manifest")
    s.add_argument("ref")
    s.set_defaults(fn=cmd_show)
    pr = sub.add_parser("promote", help="point an alias at a version (atomic); --require-shadow: only past the shadow gate")
    pr.add_argument("ref", help="name@version")
    pr.add_argument("alias", nargs="?", default=None, help="alias to move (default production)")
    pr.add_argument("--to", default=None, metavar="ALIAS", help="the alias to move, as a flag")
    pr.add_argument("--require-shadow", action="store_true",
                    help="refuse (exit 3) unless the shadow report passes the gate; the report summary goes into the alias history")
    _shadow_flags(pr, "production: the alias's current version")
    pr.set_defaults(fn=cmd_promote)

    sh = sub.add_parser("shadow", help="a candidate scored beside production on live frames: start, stop, status, report")
    shs = sh.add_subparsers(dest="shadow_cmd", required=True)
    st = shs.add_parser("start", help="workers score the chosen frames with the candidate too, after production")
    st.add_argument("candidate", help="name@version or name@alias (resolved now: the plan keeps the version)")
    st.add_argument("--against", default=None, metavar="REF", help="production reference (default <candidate name>@production)")
    st.add_argument("--cameras", default=None, metavar="CAM[,PATTERN...]", help="camera ids or glob patterns (default every camera)")
    st.add_argument("--recipes", default=None, metavar="RECIPE[,RECIPE...]",
                    help="only frames routed by these recipes (default any recipe the production model serves)")
    st.add_argument("--fraction", type=float, default=1.0, help="share of the matching frames to shadow (default 1)")
    st.add_argument("--author", default=None, help="who starts it (default the user name)")
    st.set_defaults(fn=cmd_shadow_plan)
    sp = shs.add_parser("stop", help="stop a candidate's shadow (its streams stay until their TTL)")
    sp.add_argument("candidate")
    sp.set_defaults(fn=cmd_shadow_plan)
    ss = shs.add_parser("status", help="the running shadow plans")
    ss.set_defaults(fn=cmd_shadow_plan)
    rep = shs.add_parser("report", help="agreement, alarm rate, operator-marked frames, compute: a table, or --json")
    rep.add_argument("candidate", help="name@version or name@alias of the candidate")
    rep.add_argument("--json", action="store_true", help="JSON instead of the table")
    _shadow_flags(rep, "<candidate name>@production")
    rep.set_defaults(fn=cmd_shadow)
    rb = sub.add_parser("rollback", help="move an alias back to its previous version")
    rb.add_argument("name")
    rb.add_argument("alias", nargs="?", default="production")
    rb.set_defaults(fn=cmd_rollback)
    d = sub.add_parser("delete", help="delete a version (refused while an alias points at it)")
    d.add_argument("ref")
    d.add_argument("--force", action="store_true")
    d.set_defaults(fn=cmd_delete)
    x = sub.add_parser("export", help="TorchScript (and ONNX when installed), checked against eager")
    x.add_argument("ref")
    x.add_argument("--out", required=True)
    x.add_argument("--batch", type=int, default=2)
    x.add_argument("--atol", type=float, default=1e-4)
    x.set_defaults(fn=cmd_export)
    _recipe_parser(sub)
    return p


def _shadow_flags(p: argparse.ArgumentParser, against_default: str) -> None:
    p.add_argument("--against", default=None, metavar="REF", help=f"production version compared with (default {against_default})")
    p.add_argument("--cameras", default=None, metavar="CAM[,CAM...]",
                   help="cameras to report (and the gate to require); default every camera with a shadow stream")
    p.add_argument("--frames", type=int, default=None, help="newest shadow entries per camera (default $LW_SHADOW_FRAMES, 20000)")
    p.add_argument("--confidence", type=_rate, default=None,
                   help="confidence of the alarm-rate interval and bound (default $LW_CALIBRATION_CONFIDENCE, 0.95)")
    p.add_argument("--redis-url", default=None, help="Redis with the shadow streams (default $LW_REDIS_URL)")
    p.add_argument("--redis-prefix", default=None, help="key prefix (default $LW_REDIS_PREFIX, lw)")


def _promise_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-far", type=_rate, default=None, metavar="RATE",
                   help="false-alarm rate to calibrate for: share of normal frames above the threshold (default $LW_TARGET_FAR, 0.001)")
    p.add_argument("--confidence", type=_rate, default=None,
                   help="confidence of the stated false-alarm bound (default $LW_CALIBRATION_CONFIDENCE, 0.95)")


def _archs() -> list[str]:
    from model_store.registry import list_models

    return list_models()


def _configure_logging() -> None:
    """Human-readable logs on stderr; stdout stays JSON for scripts.

    The factory looks sys.stderr up on every call rather than binding the object at configure
    time, so a replaced stream (tests, redirection) never leaves a closed file behind.
    """
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        status = args.fn(args)
    except LinewatchError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    raise SystemExit(main())
