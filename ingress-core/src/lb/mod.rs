//! Load balancing: pure endpoint choice (not written yet).
