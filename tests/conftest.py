"""Suite-wide settings: library telemetry off before anything imports it."""
from services.common.env import quiet_libraries

quiet_libraries()
