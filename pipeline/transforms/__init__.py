"""Pure Polars transforms: raw frames in, marts out."""

# Every query of the marts runs on the in-memory engine: the streaming engine sums a group's floats in
# partial sums per batch and adds them up in whichever order its threads finish, so a mart's last
# bits (and any decision at a threshold downstream) moved between runs of the same inputs. In memory,
# a group is summed in its rows' order, the same on 1 thread or 4.
ENGINE = "in-memory"
