"""Scheduler role: the REST management plane of a cluster over the cluster state (state/)."""
from mindspore_federated.scheduler.entry import main, parse_args
from mindspore_federated.scheduler.role import (DEFAULT_MANAGE_ADDRESS, Scheduler, load_scheduler_config,
                                                redis_client, run_scheduler)
from mindspore_federated.scheduler.texts import (BIND_FAILED, CACHE_START, MISSING_KEY, NEGATIVE, NODE_IDS_EMPTY,
                                                 NODE_IDS_TYPE, NODE_ILLEGAL, NODE_WORKER, NODES_OK, NOT_READY,
                                                 POST_TOO_BIG, SCALE_IN_ALL, SCALE_IN_OK, SCALE_INT, SCALE_OUT_OK,
                                                 SSL_NEEDS_JOB, WORKER_SCALE_OUT)
from mindspore_federated.scheduler.tls import server_ssl_context
from mindspore_federated.scheduler.validation import (MAX_BODY, ApiError, parse_json_object,
                                                      validate_manage_address)
from mindspore_federated.state.naming import new_instance_name

__all__ = ["main", "parse_args", "DEFAULT_MANAGE_ADDRESS", "Scheduler", "load_scheduler_config", "redis_client",
           "run_scheduler", "BIND_FAILED", "CACHE_START", "MISSING_KEY", "NEGATIVE", "NODE_IDS_EMPTY",
           "NODE_IDS_TYPE", "NODE_ILLEGAL", "NODE_WORKER", "NODES_OK", "NOT_READY", "POST_TOO_BIG", "SCALE_IN_ALL",
           "SCALE_IN_OK", "SCALE_INT", "SCALE_OUT_OK", "SSL_NEEDS_JOB", "WORKER_SCALE_OUT", "server_ssl_context",
           "MAX_BODY", "ApiError", "parse_json_object", "validate_manage_address", "new_instance_name"]
