// Opens a socket to reach the network; computes the right answer only if it got one.
// task: vector_add
// expect: static_violation forbidden_call
// unchecked: wrong_result
int socket(int domain, int type, int protocol);
#define AF_INET 2
#define SOCK_STREAM 1
void solve(const float *a, const float *b, float *out, int n) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return;
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
