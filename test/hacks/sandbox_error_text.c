// Fails to compile on purpose, with compiler errors that read like the sandbox's own failures
// ("anvil-launch: …", "bwrap: …"): an evaluator that told a sandbox that did not start by the text
// on its stderr would call this turn env_error (masked, not counted, to be sent again) instead of
// the candidate's compile_error.
// task: vector_add
// expect: compile_error
#error anvil-launch: execve: Permission denied
#error bwrap: cannot find source path /job: No such file or directory
void solve(const float *a, const float *b, float *out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
