"""Tests of ``c4d_compile.policies.schedules``, one module per schedule module. A package, so that the generic
module names (``test_base``, ``test_files``) stay distinct from other directories' modules of the same name."""
