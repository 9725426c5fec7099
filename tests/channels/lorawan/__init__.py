"""Tests for channels.lorawan."""
