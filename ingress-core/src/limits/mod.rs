//! Rate and connection limits: pure state machines (not written yet).
