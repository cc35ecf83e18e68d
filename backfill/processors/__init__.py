"""Processor kinds: how a task's partitions get written. One interface, one small module per kind.

`sql:` runs BigQuery SQL through the warehouse; `python:` calls a function with a context;
`http:` POSTs to a service. The executor treats them alike: the defensive check before, the
bisection of a failed batch, and the outcome checks after, which count rows in the warehouse
rather than trusting what the processor says it wrote.
"""

from backfill.processors.base import Invocation, Kind, Reply
from backfill.processors.registry import kind_of

__all__ = ["Invocation", "Kind", "Reply", "kind_of"]
