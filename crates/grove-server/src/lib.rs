//! Grove server library (HTTP API arrives with the task API issue).
