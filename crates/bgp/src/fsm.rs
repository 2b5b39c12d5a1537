//! Session FSM (in progress).
