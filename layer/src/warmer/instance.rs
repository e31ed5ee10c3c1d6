//! The identity of this execution environment: an id generated once per process, and
//! whether the process has handled an event yet (cold start).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// One execution environment, as the warmer reports it.
#[derive(Debug)]
pub struct Instance {
    id: String,
    handled_one: AtomicBool,
}

impl Instance {
    /// A fresh instance with a random id (tests make one each; functions use
    /// [`Instance::process`]).
    pub fn new() -> Arc<Instance> {
        Arc::new(Instance {
            id: uuid::Uuid::new_v4().to_string(),
            handled_one: AtomicBool::new(false),
        })
    }

    /// The instance of this process: the same for every layer built in it, for the life of
    /// the execution environment (Lambda runs one function process per environment).
    pub fn process() -> Arc<Instance> {
        static PROCESS: OnceLock<Arc<Instance>> = OnceLock::new();
        PROCESS.get_or_init(Instance::new).clone()
    }

    /// The id, stable for the life of the process.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records that an event is being handled; true only the first time (the cold start).
    pub fn first_event(&self) -> bool {
        !self.handled_one.swap(true, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_once_and_stable_id() {
        let i = Instance::new();
        assert!(i.first_event());
        assert!(!i.first_event());
        assert_eq!(Instance::process().id(), Instance::process().id());
        assert_ne!(Instance::new().id(), Instance::new().id());
    }
}
