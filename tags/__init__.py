"""Shared vocabulary of the system: samples, quality, tags, current values, history."""
