"""The rule catalogue (input limits, L0 and L1 rules) and the checks behind it.

Results are data (``Violation`` lists), never exceptions, so a caller can list every
violation at once.
"""
