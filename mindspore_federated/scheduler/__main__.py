"""`python -m mindspore_federated.scheduler`: runs the scheduler process."""
import sys

from mindspore_federated.scheduler.entry import main

sys.exit(main())
