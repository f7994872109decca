"""Dispatch domain core (派单): work orders, catalog, routing, deadlines, rates. Imports no web framework.

Public API: :mod:`dispatch.service` (``DispatchService``, ``export_dispatch_decisions``), :mod:`dispatch.proposal`
(``Intake``, ``ModelProposal``, ``Scored``, ``Actor``), :mod:`dispatch.errors`, :func:`dispatch.catalog.seed.seed_catalog`.
See dispatch/README.md.
"""
