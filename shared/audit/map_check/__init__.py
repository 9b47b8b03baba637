"""The map pass (issue 24): each ``map_commit`` commits to the heads the log says.

The log is read once, by the entries pass, which hands what the map needs of each entry to a
``Replay`` (``map_feed``) in log order. Each entity's head is rebuilt with the seal's own rule
(``map_feed.head_value``, the bytes of ``map_commit.head_of``). Full audit: at each commit
the heads changed since the previous one are applied to an in-memory map and its root
compared with the commit's; then every node of every stored stratum (``map_strata``) is
compared with the recomputed one.
Incremental audit: the stored map of the latest commit, with the keys changed since the last
verified commit taken out, must rebuild that commit's root; each commit since is then
rebuilt from it (``map_rebuild``) and its root compared; and the stored map must prove every
changed head against the latest commit. Each checkpoint from the first commit on must end
with a commit. Anything else is a ``map_invalid`` finding naming the commit's index and,
where one key explains it, the entity.
"""

from shared.audit.map_check.commits import checked
from shared.audit.map_check.replay import Replay

__all__ = ["Replay", "checked"]
