"""The one boundary to MLflow: the store (runs of jobs and sweeps), reaching stores, the server."""
from .filters import check_filter
from .reach import check_source, check_store, existing_store
from .server import LOOPBACK, local_postgres, port_in_use, start_server, stop_server, wait_for_server
from .opening import StoreUnreachable, is_read_only_error, read_only_store, with_driver
from .store import DEFAULT_EXPERIMENT, PARENT_TAG, JobRun, StopRun, Store, absolute_store, flatten, is_unreachable
from .views import ROLE_TAG, experiment_url, run_url, ui_base_url

__all__ = ["DEFAULT_EXPERIMENT", "LOOPBACK", "PARENT_TAG", "ROLE_TAG", "JobRun", "StopRun", "Store", "StoreUnreachable",
           "absolute_store", "check_filter", "check_source", "check_store", "existing_store", "experiment_url", "flatten", "is_read_only_error", "is_unreachable",
           "local_postgres", "port_in_use", "read_only_store", "run_url", "start_server", "stop_server", "ui_base_url", "wait_for_server",
           "with_driver"]
