"""Stop this cluster's scheduler and servers gracefully (found through what they registered in Redis).

Usage:  python finish_cloud.py --redis_port 6379
Expected output, one line per process:  killed 1234
"""
import sys

from mindspore_federated.tools.finish_cloud import main

if __name__ == "__main__":
    sys.exit(main())
