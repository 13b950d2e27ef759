"""Graph nodes, one module each: perceive, plan, execute, reflect, rollback, face_restore, finalize."""
