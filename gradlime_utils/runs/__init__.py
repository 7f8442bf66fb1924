"""Running the book's chapters and recording what ran: :mod:`~gradlime_utils.runs.reproduce` (papermill runs with
manifests), :mod:`~gradlime_utils.runs.sweep` (Dask sweeps over chapter parameters), :mod:`~gradlime_utils.runs.ledger`
(the reproduction ledger built from the manifests), :mod:`~gradlime_utils.runs.claims` (the What-held verdicts),
:mod:`~gradlime_utils.runs.power` (sizes chosen by power), and the paper profile's pre-flight
(:mod:`~gradlime_utils.runs.paper`), downloads (:mod:`~gradlime_utils.runs.fetch`), fixtures in the published
layouts (:mod:`~gradlime_utils.runs.fixtures`), rehearsal (:mod:`~gradlime_utils.runs.rehearse`) and Colab set-up
(:mod:`~gradlime_utils.runs.colab`)."""
