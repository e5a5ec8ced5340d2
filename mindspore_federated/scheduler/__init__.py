"""Scheduler role: the REST management plane of a cluster over the cluster state (state/)."""
from mindspore_federated.errors import SCHED_BIND_FAILED as BIND_FAILED
from mindspore_federated.errors import SCHED_CACHE_START as CACHE_START
from mindspore_federated.errors import SCHED_MISSING_KEY as MISSING_KEY
from mindspore_federated.errors import SCHED_NEGATIVE as NEGATIVE
from mindspore_federated.errors import SCHED_NODE_IDS_EMPTY as NODE_IDS_EMPTY
from mindspore_federated.errors import SCHED_NODE_IDS_TYPE as NODE_IDS_TYPE
from mindspore_federated.errors import SCHED_NODE_ILLEGAL as NODE_ILLEGAL
from mindspore_federated.errors import SCHED_NODE_WORKER as NODE_WORKER
from mindspore_federated.errors import SCHED_NODES_OK as NODES_OK
from mindspore_federated.errors import SCHED_NOT_READY as NOT_READY
from mindspore_federated.errors import SCHED_POST_TOO_BIG as POST_TOO_BIG
from mindspore_federated.errors import SCHED_SCALE_IN_ALL as SCALE_IN_ALL
from mindspore_federated.errors import SCHED_SCALE_IN_OK as SCALE_IN_OK
from mindspore_federated.errors import SCHED_SCALE_INT as SCALE_INT
from mindspore_federated.errors import SCHED_SCALE_OUT_OK as SCALE_OUT_OK
from mindspore_federated.errors import SCHED_SSL_NEEDS_JOB as SSL_NEEDS_JOB
from mindspore_federated.errors import SCHED_WORKER_SCALE_OUT as WORKER_SCALE_OUT
from mindspore_federated.scheduler.entry import main, parse_args
from mindspore_federated.scheduler.role import (
                                                DEFAULT_MANAGE_ADDRESS,
                                                Scheduler,
                                                load_scheduler_config,
                                                redis_client,
                                                run_scheduler,
)
from mindspore_federated.scheduler.validation import (
                                                MAX_BODY,
                                                ApiError,
                                                parse_json_object,
                                                validate_manage_address,
)
from mindspore_federated.state.naming import new_instance_name
from mindspore_federated.tls import https_server_context as server_ssl_context

__all__ = ["main", "parse_args", "DEFAULT_MANAGE_ADDRESS", "Scheduler", "load_scheduler_config", "redis_client",
           "run_scheduler", "BIND_FAILED", "CACHE_START", "MISSING_KEY", "NEGATIVE", "NODE_IDS_EMPTY",
           "NODE_IDS_TYPE", "NODE_ILLEGAL", "NODE_WORKER", "NODES_OK", "NOT_READY", "POST_TOO_BIG", "SCALE_IN_ALL",
           "SCALE_IN_OK", "SCALE_INT", "SCALE_OUT_OK", "SSL_NEEDS_JOB", "WORKER_SCALE_OUT", "server_ssl_context",
           "MAX_BODY", "ApiError", "parse_json_object", "validate_manage_address", "new_instance_name"]
