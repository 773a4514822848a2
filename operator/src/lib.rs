//! The LiveKitConfig operator (filled in by the operator issue).
