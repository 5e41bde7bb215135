//! Push: one ingest session per (stream × destination).
