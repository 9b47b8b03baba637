"""What input and what entity is acceptable: the kinds and their fields (``kinds``), names as
people read them (``names``, with Unicode's tables in ``unicode/``), the ``lifecycle``,
``four_eyes``, path and query parameters, and the rule catalogue (input limits, L0 and L1
rules) with the checks behind it.

Results are data (``Violation`` lists), never exceptions, so a caller can list every
violation at once.
"""
