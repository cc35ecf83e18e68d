"""Test doubles wired in from the outside: worker entry modules that wrap the warehouse."""
