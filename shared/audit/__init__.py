"""The audit of a tenant's log (issue 21: being split by pass)."""
