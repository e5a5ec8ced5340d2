"""Every user-visible error text and reason string, plus the package's exception types."""


class FederatedError(RuntimeError):
    """Base of our errors; a RuntimeError constructible from one message (survives pickling)."""


class ConfigError(FederatedError):
    """The YAML configuration (or a start-up parameter) is invalid; the message lists every problem."""


class StateError(FederatedError):
    """Redis (the distributed cache) failed or holds inconsistent state."""


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

# ---- getModel / pullWeight / pushWeight / pushMetrics ------------------------------------------
GETMODEL_SCHEMA = "The schema of RequestGetModel is invalid."
GETMODEL_NOT_READY = ("The model is not ready yet for iteration {iteration}. Maybe this is because\n"
                      "1. Client doesn't send enough update model request.\n"
                      "2. Worker has not push all the weights to servers.")
GETMODEL_SUCCESS = "Get model for iteration {iteration}"
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
SSL_CLIENT_PASSWORD_EMPTY = "The client password's value is empty."
SSL_PKCS12 = "PKCS12_parse failed"
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
