"""The heads pass: each entity's head repeats what its current version says, and points at
it. A head whose version the entries pass read is compared with that version's ``Summary``
(those that would find nothing left out first, in C: ``plain_heads``); the others with the
ledger read again. After an entries pass in the workers, they check the
heads too, range by range of first index (``check_heads``), and the audit takes what they
found in the order the heads were read (``_take``), so both find the same in the same order.
What the current versions need of the rules is gathered here for ``rules.checked``."""

from shared.audit.heads.parallel import checked

__all__ = ["checked"]
