"""Planning: upscale factor, agenda, step ordering and the rollback search over orderings."""
