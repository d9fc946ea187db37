"""The sinks a runner delivers to: each has start(), deliver(batch) -> outcomes, state(), close()."""
