"""Background jobs: the queue and worker (``queue``), child-process isolation (``isolated``), tables."""
