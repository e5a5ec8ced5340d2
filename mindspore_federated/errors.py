"""Every user-visible error text and reason string, plus the package's exception types."""


class FederatedError(RuntimeError):
    """Base of our errors; a RuntimeError constructible from one message (survives pickling)."""


class ConfigError(FederatedError):
    """The YAML configuration (or a start-up parameter) is invalid; the message lists every problem."""


class StateError(FederatedError):
    """Redis (the distributed cache) failed or holds inconsistent state."""


class Unavailable(Exception):
    """A device request cannot be served now; the plain-text reply is the message (e.g. SAFEMODE)."""


class ApiError(Exception):
    """A scheduler REST request failed with a reference error text (HTTP 400, code "1")."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text


class NotBuiltError(ConfigError):
    """The configuration asks for a feature this build does not implement yet."""


# ---- YAML config (spec §7) -------------------------------------------------------------------
CFG_MISSING = "The parameter '{key}' is missing, yaml config file: {path}"
CFG_TYPE = "The parameter '{key}' is expected to be type {type}, but got {got}, yaml config file: {path}"
CFG_RANGE = "Failed to check value of parameter '{key}': {rule}, yaml config file: {path}"
CFG_CHOICE = "The value of parameter '{key}' can be only one of {choices}, but got '{value}', yaml config file: {path}"
CFG_UNKNOWN = "The parameter '{key}' is not a known configuration key, yaml config file: {path}"
CFG_FILE = "Failed to load yaml config file: {path}: {reason}"

# ---- plain-text availability replies (device HTTP) --------------------------------------------
SAFEMODE = "The cluster is in safemode."
JOB_DISABLED = "The server's training job is disabled or finished."
INNER_ERROR = "An inner error occurred"
POST_MESSAGE_FAILED = "Get post message failed"

# ---- startFLJob (spec §3.7) ------------------------------------------------------------------
FLJOB_SCHEMA = "The schema of RequestFLJob is invalid."
FLJOB_VERIFY = "Verify flatbuffers schema failed for RequestFLJob."
FLJOB_THRESHOLD = "Current amount for startFLJob has reached the threshold. Please startFLJob later."
FLJOB_SIGN = "startFLJob sign and certificate verify failed."
FLJOB_DATA_SMALL = "FL job data size is not enough."
FLJOB_DATA_LARGE = "FL job data size is too large."
FLJOB_DEVICE_META = "Updating device metadata failed for fl id {fl_id}"
FLJOB_COUNT = "Counting start fl job request failed. Please retry later."
FLJOB_SUCCESS = "success"

# ---- updateModel -----------------------------------------------------------------------------
UPDATE_SCHEMA = "The schema of RequestUpdateModel is invalid."
UPDATE_VERIFY = "Verify flatbuffers schema failed for RequestUpdateModel."
UPDATE_ENOUGH = "Current amount for updateModel is enough. Please retry later."
UPDATE_NO_META = "devices_meta for {fl_id} is not set. Please retry later."
UPDATE_ITERATION = ("UpdateModel iteration number is invalid:{iteration}, current iteration:{current}, "
                    "Retry later at time: {next_time}, fl id is {fl_id}")
UPDATE_FEATURES = "Verify model feature map failed, retry later at time: {next_time}"
UPDATE_NOT_IN_SECRETS = "fl_id: {fl_id} is not in get_secrets_clients. Please retry later."
UPDATE_EMPTY = "Feature map is empty for fl id {fl_id}"
UPDATE_MISSING_WEIGHT = "The updated weight of parameter {name} is missing, fl id: {fl_id}"
UPDATE_WEIGHT_FAILED = "Updating weight {name} failed, fl id: {fl_id}"
UPDATE_DUPLICATE = "Updating metadata of UpdateModelClientList failed for fl id {fl_id}"
UPDATE_SUCCESS = "success not ready"

# ---- device PKI (client_verify.*, spec §5.4) ------------------------------------------------------
PKI_FILE_MISSING = "client_verify.pki_verify is true, but {key} '{path}' does not exist"
PKI_FILE_LOAD = "Failed to load {key} '{path}': {reason}"
FLJOB_SIGN_EMPTY = "sign data is empty."
# later signed rounds: updateModel names the device, the cipher rounds do not (as the reference)
SIGN_FAILED = "verify signature failed."
SIGN_STALE = "verify signature timestamp failed or cannot find its key attestation."
UPDATE_SIGN_FAILED = "verify signature failed for fl id {fl_id}"
UPDATE_SIGN_STALE = "verify signature timestamp failed or cannot find its key attestation for fl id {fl_id}"

# ---- getModel / pullWeight / pushWeight / pushMetrics ------------------------------------------
GETMODEL_SCHEMA = "The schema of RequestGetModel is invalid."
GETMODEL_NOT_READY = ("The model is not ready yet for iteration {iteration}. Maybe this is because\n"
                      "1. Client doesn't send enough update model request.\n"
                      "2. Worker has not push all the weights to servers.")
GETMODEL_SUCCESS = "Get model for iteration {iteration}"
PULL_SCHEMA = "The schema of RequestPullWeight is invalid."
PUSH_SCHEMA = "The schema of RequestPushWeight is invalid."
PULL_NOT_DONE = "The aggregation for the weights is not done yet."
PULL_ITERATION = "PullWeight iteration {iteration} is invalid. Server current iteration: {current}"
PULL_UNKNOWN = "The weight {name} is not found in the server."
PUSH_FINISHED = "Model of iteration of {iteration} has finished"
PUSH_ITERATION = "PushWeight iteration {iteration} is invalid. Server current iteration: {current}"
PUSH_EMPTY = "PushWeight feature_map is empty."
PUSH_SUCCESS = "PushWeight succeed."

# ---- iteration results (spec §1.8) -----------------------------------------------------------
ITER_AGGREGATED = "Weight aggregation finished! This iteration is valid. Proceed to next iteration."
ITER_UNMASKED = "Weight unmask finished! This iteration is valid. Proceed to next iteration."
ITER_METRICS = "Push metrics finished! This iteration is valid. Proceed to next iteration."
ITER_ROUND_TIMEOUT = "Round {name} timeout! This iteration is invalid. Proceed to next iteration."
ITER_GLOBAL_TIMEOUT = "Global timer timeout! This iteration is invalid. Proceed to next iteration."
ITER_AGG_FAILED = "Weight aggregation failed: {reason}. This iteration is invalid. Proceed to next iteration."
ITER_SERVER_EXITED = ("Server that processed updateModel requests exited. This iteration is invalid. "
                      "Proceed to next iteration.")
ITER_CACHE_EMPTY = ("The instance status info stored in distributed cache is empty. This iteration is invalid. "
                    "Proceed to next iteration.")
ITER_DISABLED = "Disable instance"

# ---- server start-up (python-api.md) -----------------------------------------------------------
START_FEATURE_NOT_FOUND = ("The features are inconsistent with that declared in distributed cache: "
                           "cannot find feature {name}")
START_FEATURE_COUNT = ("The number {local} of local features != the number {cached} declared in the the "
                       "distributed cache")
START_FEATURE_AGGR = "The feature require_aggr {local} of local != that {cached} declared in the distributed cache"
START_FEATURE_SIZE = "The feature size {local} of local != that {cached} declared in the distributed cache"
START_HYPER_PARAMS = "Sync hyper params with distributed cache failed"
START_INSTANCE = "Sync instance info with distributed cache failed"
START_STOPPING = "Fl job {fl_name} is stopping"
START_PEERS = "Failed to access all other servers"
START_EMPTY_MODEL = "The feature map of the server is empty: provide an initial model or a recovery checkpoint"
START_REG_LOCK = "Failed to acquire the server registration lock"
START_HTTP = "Failed to start the HTTP server on {address}: {reason}"
START_CHECKPOINT_MISSING = "The checkpoint file {path} does not exist"
PARAM_TYPE = "Parameter '{name}' should be {type}, but got {got}"
PARAM_ADDRESS = "Invalid {name}: {address!r}, expected 'ipv4:port' with port in [1, 65535]"
FEATURE_NAME = "Feature name should be a non-empty str, but got {name!r}"
FEATURE_DATA_TYPE = "Feature '{name}' data should be a numpy.ndarray, but got {got}"
FEATURE_DTYPE = "Feature '{name}' data type should be float32, but got {dtype}"
JSON_CONFIG_LOAD = "Failed to load config file {path}: {reason}"
JSON_CONFIG_NOT_OBJECT = "the content should be a JSON object"
RECOVERY_STORAGE_TYPE = "recovery.storage_type: only 1 (file storage) is supported"
SSL_CLIENT_PASSWORD_EMPTY = "The client password's value is empty."
SSL_PKCS12 = "PKCS12_parse failed"
SSL_CERT_EXPIRING = "The certificate of {path} expires in {days} days (not after {not_after} UTC)"
SSL_CERT_EXPIRED = "The certificate of {path} expired on {not_after} UTC"
SSL_CA_MISSING = "ssl.ca_cert_path is needed to verify peers, but it is empty"
SSL_CA_LOAD = "Failed to load the CA certificate {path}: {reason}"
SSL_CRL_LOAD = "Failed to load the certificate revocation list {path}: {reason}"
SSL_CIPHERS = "None of the TLS cipher suites '{ciphers}' is available"
CIPHER_INIT = "cipher init fail."

# ---- device simulators (client/simulator.py, the example's run_devices.py) ---------------------------
SIM_OVER_ADMISSION = ("WARNING: {turned_away} of {devices} devices were turned away by startFLJob "
                      "(OutOfTime: the cluster admits fewer devices per iteration than are running, see "
                      "round.start_fl_job_threshold); they wait for a later server iteration, so every "
                      "iteration takes longer. Run at most start_fl_job_threshold devices, or raise it.")
NOT_BUILT = ("Not built yet: {features}. The server refuses to start rather than run without it; "
             "remove the setting from {path}")
NOT_BUILT_CLUSTER = ("Not built yet: {features}, asked for by the hyper-params of cluster {fl_name} in the "
                     "distributed cache. The server refuses to start rather than run without it")

# ---- scheduler (spec §2) ---------------------------------------------------------------------
SCHED_MANAGE_TYPE = "Parameter 'manage_address' should be str"
SCHED_BAD_ADDRESS = "Failed to start scheduler http server, invalid server address: {address}"
SCHED_NO_CLUSTER = "Cannot find cluster info for {fl_name}"
SCHED_CACHE = "Failed to access the cache server. Please retry later."
SCHED_STATE_INNER = "Failed to get cluster state because of some inner error."
SCHED_STATE_OK = "Get cluster state successful."
SCHED_POST_SIZE = "The post message size is invalid."
SCHED_BAD_JSON = "Illegal JSON format:{detail}"
SCHED_NEW_INSTANCE_FAILED = "New instance failed: {reason}"
SCHED_FIELD_UINT = "Field {key} in hyper param config should be unsigned integer number"
SCHED_FIELD_NUMBER = "Field {key} in hyper param config should be float or integer number"
SCHED_FIELD_POSITIVE = "Field {key} in hyper param config should be larger than 0"
SCHED_FIELD_RATIO = "Field update_model_ratio in hyper param config should be in range of (0,1.0]"
SCHED_NEW_INSTANCE_OK = "Start new instance successful."
SCHED_QUERY_OK = "Query Instance successful."
SCHED_ENABLE_OK = "start enabling FL-Server successful."
SCHED_DISABLE_OK = "start disabling FL-Server successful."
SCHED_ENABLE_FINISHED = "The instance is completed and cannot be enabled."
SCHED_DISABLE_FINISHED = "The instance is completed and cannot be disabled."
SCHED_ALREADY_ENABLED = "The instance has already been enabled."
SCHED_ALREADY_DISABLED = "The instance has already been disabled."

# ---- scheduler: the older /nodes, /scaleout, /scalein API (MindSpore 1.x scheduler) -------------------
SCHED_NODES_OK = "Get nodes info successful."
SCHED_SCALE_OUT_OK = "Cluster begin to scale out."
SCHED_SCALE_IN_OK = "Cluster begin to scale in."
SCHED_NOT_READY = "The cluster is not ready."
SCHED_MISSING_KEY = "The json is not contain the key:{key}"
SCHED_NEGATIVE = "The value should not be less than 0."
SCHED_WORKER_SCALE_OUT = "The Worker does not currently support scale out."
SCHED_NODE_IDS_EMPTY = "The node ids should not be empty."
SCHED_NODE_ILLEGAL = "The node id:{node_id} is illegal."
SCHED_NODE_WORKER = "The node id:{node_id} is the role of worker, should not be scale in."
# ---- scheduler: our own texts (no reference equivalent) ----------------------------------------------
SCHED_SCALE_INT = "The value of the key:{key} should be an integer."
SCHED_NODE_IDS_TYPE = "The value of the key:node_ids should be a list of strings."
SCHED_SCALE_IN_ALL = "The scale in would remove every server of the cluster."
SCHED_NOT_OBJECT = "the post message should be a JSON object"
# the reference's text for a body over its 100 MiB limit (kMaxMessageSize = 100 * 2^20 bytes)
SCHED_POST_TOO_BIG = "The post message is bigger than 100mb."
SCHED_BIND_FAILED = "Failed to start scheduler http server on {address}: {reason}"
SCHED_CACHE_START = "Failed to access the cache server {address} at start-up: {reason}"
SCHED_SSL_NEEDS_JOB = ("enable_ssl is true: start the scheduler through FlSchedulerJob(..., "
                       "ssl_config=SSLConfig(...)) or set MSF_SSL_SERVER_PASSWORD and MSF_SSL_CLIENT_PASSWORD, "
                       "so the certificate password is not passed on the command line")
SCHED_INVALID_PORT = "invalid port {text!r}: expected 1..65535"

# ---- secure aggregation: cipher rounds (spec §5.1; server/secagg/) ------------------------------------
CIPHER_ITERATION = "iter num is error."
EK_SCHEMA = "The schema of RequestExchangeKeys is invalid."
EK_VERIFY = "Building flatbuffers schema failed for ExchangeKeys."
EK_ENOUGH = "Current amount for exchangeKey is enough. Please retry later."
EK_NO_META = "devices_meta for {fl_id} is not set. Please retry later."
EK_DUPLICATE = "The server has received the request, please do not request again."
EK_SUCCESS = "Success, but the server is not ready yet."
GK_SCHEMA = "The schema of GetExchangeKeys is invalid."
SS_SCHEMA = "The schema of RequestShareSecrets is invalid."
SS_VERIFY = "Building flatbuffers schema failed for RequestShareSecrets."
SS_ENOUGH = "Current amount for ShareSecretsKernel is enough."
SS_ITERATION = "ShareSecretsKernel iteration invalid"
SS_NOT_MEMBER = "client share secret is not in getkeys list. && client is illegal"
SS_DUPLICATE = "client sharesecret already exists."
SS_SUCCESS = "OK"
GS_SCHEMA = "The schema of GetShareSecrets is invalid."
GCL_SCHEMA = "The schema of GetClientList is invalid."
GCL_NOT_READY = "The server is not ready."
GCL_NOT_MEMBER = "fl_id: {fl_id} is not in the update_model_clients"
GCL_SUCCESS = "send clients_list succeed!"
RS_SCHEMA = "The schema of SendReconstructSecret is invalid."
RS_ITERATION = "The iteration round of the client does not match the current iteration."
RS_ENOUGH = "Current amount for ReconstructSecretsKernel is enough."
RS_NOT_LISTED_UPLOADED = "The client {fl_id} is not in get clients list, but in update model client list."
RS_NOT_UPLOADED = "The client is not in update model client list."
RS_DUPLICATE = "Client has sended messages."
RS_RECONSTRUCTING = "Success,the secret is reconstructing."
RS_NOT_YET = "Success, but the server is not ready to reconstruct secret yet."
PLS_SCHEMA = "The schema of PushClientListSign is invalid."
PLS_ITERATION = "push list sign iteration number is invalid"
PLS_ENOUGH = "Current amount for PushListSignKernel is enough."
PLS_NOT_LISTED = "client send signature is not in get update model client list. && client is illegal"
PLS_SUCCESS = "send update model client list signature success. "
GLS_SCHEMA = "The schema of RequestAllClientListSign is invalid."
GLS_NOT_READY = "The server is not ready."
GLS_NOT_SENT_UPLOADED = "client not send list signature, but in update model client list."
GLS_NOT_SENT = "client not send list signature, && client is illegal"
GLS_SUCCESS = "send update model client list signature success. "
UPDATE_NOT_SECRETS = "fl_id: {fl_id} is not in get_secrets_clients. Please retry later."
UNMASK_FAILED = "secret reconstruction failed: {reason}"
UNMASK_SHARES = "only {count} shares of {fl_id}'s secret, {needed} needed"
UNMASK_BAD_SHARE = "the shares of {fl_id}'s secret are malformed"
UNMASK_NO_KEYS = "no public keys of {fl_id}"
SIGNDS_INDEX = "Verify model feature map failed, retry later at time: {next_time}"
GK_VERIFY = "Building flatbuffers schema failed for GetExchangeKeys."
GCL_VERIFY = "Building flatbuffers schema failed for GetClientList."
RS_VERIFY = "Building flatbuffers schema failed for SendReconstructSecret."
PLS_VERIFY = "Building flatbuffers schema failed for PushClientListSign."
GLS_VERIFY = "Building flatbuffers schema failed for RequestAllClientListSign."

# ---- Redis AUTH and TLS (issue 14 items 3, 4) ---------------------------------------------------------
REDIS_AUTH = ("Redis at {address} refused the credentials of {who} (Redis auth: distributed_cache.username / "
              "password or MSF_REDIS_USERNAME / MSF_REDIS_PASSWORD): {reason}")
REDIS_TLS = ("TLS to Redis at {address} failed (enable_ssl asks for TLS to Redis; is it a TLS port whose "
             "certificate distributed_cache.cacert_filename / capath trusts?): {reason}")
REDIS_TLS_FILE = "Failed to load distributed_cache.{key} '{path}' for TLS to Redis: {reason}"
REDIS_TLS_KEY_PAIR = ("distributed_cache.cert_filename and distributed_cache.private_key_filename go together "
                      "(a client certificate needs its key), but only {given} is set")

# ---- compression (spec §6): our own texts, the reference answers all of these with UPDATE_FEATURES -----
COMPRESS_REJECTED = ("Verify compressed feature map failed for fl id {fl_id}: {detail}, "
                     "retry later at time: {next_time}")
COMPRESS_NOT_CONFIGURED = "this cluster takes uncompressed uploads only (upload_compress_type NO_COMPRESS)"
COMPRESS_UNKNOWN_TYPE = "upload_compress_type {value} is not DIFF_SPARSE_QUANT"
COMPRESS_RATE = "upload_sparse_rate {got!r} is not the cluster's {want!r}"
COMPRESS_ITERATION = "iteration {iteration} is not this server's current iteration {current} yet"
COMPRESS_NAMES_EMPTY = "name_vec is empty"
COMPRESS_NAMES_COUNT = "name_vec has {names} names for {entries} compressed entries"
COMPRESS_NAME_ORDER = "compressed entry #{index} is {got!r}, name_vec says {want!r}"
COMPRESS_NAME_UNKNOWN = "weight {name!r} is not in the model"
COMPRESS_NAME_TWICE = "weight {name!r} is named twice"
COMPRESS_MISSING = "the updated weight of parameter {name} is missing"
COMPRESS_DISABLED_WARNING = ("upload compression {compress} is not advertised: encrypt_type {encrypt_type} "
                             "takes uncompressed uploads only")

# ---- scheduler: management-plane access (issue 17) ---------------------------------------------------
SCHED_UNAUTHORIZED = ("Unauthorized: this scheduler requires the header 'Authorization: Bearer <token>' "
                      "with its management token (manage.token or MSF_MANAGE_TOKEN)")
SCHED_OPEN_BIND = ("the management API listens on {address}, beyond this host, without a token: set manage.token "
                   "(or MSF_MANAGE_TOKEN) so that only operators can change the cluster")
# ---- worker (hybrid and cloud) --------------------------------------------------------------------------
WORKER_REGISTER = "Worker {fl_id} failed to register in the cluster: {why}"
WORKER_NO_SERVER = "No live server answered {round} within {seconds:.0f} s: {why}"
WORKER_FINISHED = "The server's training job is disabled or finished: {round} is not served."
WORKER_REPLY = "{round} failed: {reason}"
WORKER_MODE = ("FederatedLearningManager: run_mode {run_mode!r} is not supported "
               "(expected FEDERATED_LEARNING or HYBRID_TRAINING)")
WORKER_ENCRYPT = ("the cloud worker supports encrypt_type NOT_ENCRYPT or STABLE_PW_ENCRYPT only; "
                  "the YAML asks for {encrypt_type}")
WORKER_SYNC_TYPE = "FederatedLearningManager: sync_type must be 'fixed' or 'adaptive', got {sync_type!r}"
WORKER_ARG = "FederatedLearningManager: {name} must be {what}, got {value!r}"
WORKER_NO_PARAMS = "FederatedLearningManager: the network has no parameters to synchronise"


# ---- device HTTP: hostile clients (ours, no reference equivalent; issue 14) ----------------------------------
HTTP_TOO_MANY_CONNECTIONS = "The server has too many connections; try again later."
HTTP_REQUEST_TIMEOUT = "The request was not received in time."
HTTP_BAD_REQUEST = "Bad Request"

# ---- autoscaler (issue 17) -----------------------------------------------------------------------------
AUTOSCALE_K8S_CLIENT_MISSING = ("the kubernetes autoscale launcher needs the Python package 'kubernetes' "
                                "(pip install kubernetes), which is not installed")
AUTOSCALE_K8S_NO_CLUSTER = ("the kubernetes autoscale launcher found no cluster: not in a pod and no usable "
                            "kubeconfig ({reason})")
AUTOSCALE_BAD_CONFIG = "invalid autoscale configuration: {reason}"

# ---- Redis Sentinel and Cluster (issue 17 item 4) ----------------------------------------------------
REDIS_HA_NO_TLS = ("enable_ssl asks for TLS to Redis, but TLS to a Redis {kind} is not built: use a single "
                   "Redis address with TLS, or turn enable_ssl off")
REDIS_CLUSTER_DB = "distributed_cache.db is {db}, but a Redis Cluster has only database 0"
REDIS_CLUSTER_PIPELINED = ("the pipelined hot-path client speaks to one Redis node and cannot serve the Redis "
                           "Cluster {address}: the hot path runs on redis-py's cluster client")
