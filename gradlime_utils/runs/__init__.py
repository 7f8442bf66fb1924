"""Running the book's chapters and recording what ran: :mod:`~gradlime_utils.runs.reproduce` (papermill runs with
manifests), :mod:`~gradlime_utils.runs.sweep` (Dask sweeps over chapter parameters) and
:mod:`~gradlime_utils.runs.ledger` (the reproduction ledger built from the manifests)."""
