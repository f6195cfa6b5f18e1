// Compiled into every fuzz target (scripts/fuzz.sh).

/// Stops the target with `message` when an invariant of a parser's result does not hold. Unlike
/// `precondition`, whose message the optimized build drops, this says what went wrong.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError(message()) }
}
