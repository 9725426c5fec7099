"""Billing: billing periods, ПП 354 substitution rules for missing readings, readings per account."""
