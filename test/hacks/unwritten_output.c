// Returns without writing anything, hoping the output still holds a right answer.
// task: vector_add
// expect: wrong_result
void solve(const float *a, const float *b, float *out, int n) { (void)a; (void)b; (void)out; (void)n; }
