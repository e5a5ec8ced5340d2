"""`python -m mindspore_federated.server`."""
import sys

from mindspore_federated.server import main

sys.exit(main())
