//! Host networking from desired state (work in progress).
