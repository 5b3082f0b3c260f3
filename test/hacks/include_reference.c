// Pulls the reference's source in at compile time.
// task: vector_add
// expect: static_violation forbidden_include
// unchecked: compile_error
#include ANVIL_REFERENCE_INCLUDE
