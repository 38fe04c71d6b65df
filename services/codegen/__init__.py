"""The codegen service: strategy schema -> analysis -> standalone VectorBT script."""
