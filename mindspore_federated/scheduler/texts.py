"""The scheduler's own reply and start-up texts (the shared SCHED_* texts live in errors.py)."""

# ---- texts of the older /nodes, /scaleout, /scalein API (MindSpore 1.x scheduler) --------------------
NODES_OK = "Get nodes info successful."
SCALE_OUT_OK = "Cluster begin to scale out."
SCALE_IN_OK = "Cluster begin to scale in."
NOT_READY = "The cluster is not ready."
MISSING_KEY = "The json is not contain the key:{key}"
NEGATIVE = "The value should not be less than 0."
WORKER_SCALE_OUT = "The Worker does not currently support scale out."
NODE_IDS_EMPTY = "The node ids should not be empty."
NODE_ILLEGAL = "The node id:{node_id} is illegal."
NODE_WORKER = "The node id:{node_id} is the role of worker, should not be scale in."
# ---- our own texts (no reference equivalent) --------------------------------------------------------
SCALE_INT = "The value of the key:{key} should be an integer."
NODE_IDS_TYPE = "The value of the key:node_ids should be a list of strings."
SCALE_IN_ALL = "The scale in would remove every server of the cluster."
NOT_OBJECT = "the post message should be a JSON object"
# the reference's text for a body over its 100 MiB limit (kMaxMessageSize = 100 * 2^20 bytes)
POST_TOO_BIG = "The post message is bigger than 100mb."
BIND_FAILED = "Failed to start scheduler http server on {address}: {reason}"
CACHE_START = "Failed to access the cache server {address} at start-up: {reason}"
SSL_NEEDS_JOB = ("enable_ssl is true: start the scheduler through FlSchedulerJob(..., ssl_config=SSLConfig(...)) "
                 "so the certificate password is not passed on the command line")
