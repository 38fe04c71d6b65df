"""Suite-wide settings: library telemetry off before anything imports it, and
the slow files first, so that two xdist workers (``--dist loadfile``) finish
together instead of one waiting on the last long file."""
from services.common.env import quiet_libraries

quiet_libraries()


def pytest_collection_modifyitems(config, items):
    """Files with a test marked slow go first, then the end-to-end ones (longest work first: make test
    runs xdist with --no-loadscope-reorder, which keeps this order); the order is otherwise kept."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path not in slow_files, item.path.parent.name != "e2e"))  # sort is stable
