"""Callback hooks a server calls (after_started, before_stopped, on_iteration_end) and their context."""


class CallbackContext:
    """What `on_iteration_end` receives about the iteration that just ended."""

    def __init__(self, feature_map, checkpoint_file, fl_name, instance_name, iteration_num, iteration_valid,
                 iteration_result):
        self.feature_map = feature_map
        self.checkpoint_file = checkpoint_file
        self.fl_name = fl_name
        self.instance_name = instance_name
        self.iteration_num = iteration_num
        self.iteration_valid = iteration_valid
        self.iteration_result = iteration_result

    def __repr__(self):
        return (f"CallbackContext(fl_name={self.fl_name!r}, instance_name={self.instance_name!r}, "
                f"iteration_num={self.iteration_num}, iteration_valid={self.iteration_valid}, "
                f"checkpoint_file={self.checkpoint_file!r})")


class Callback:
    """Base class of server callbacks; override any hook."""

    def __init__(self):
        pass

    def after_started(self):
        """Called once, when the server answers device HTTP requests."""

    def before_stopped(self):
        """Called once, before the server stops."""

    def on_iteration_end(self, context):
        """Called on the server that writes the iteration's summary, after each iteration."""
