// Spends the correctness phase's deadline in its own calls (each under the call timeout) and
// returns just before the deadline runs out, so that it expires while the judge waits for the
// reference: reported as "the reference runner failed", an env_error (masked, not counted), this
// would be a way out of any counted failure. The deadline is estimated from the first call's
// time (omp_get_wtime); after it, every call returns at once, and the timing phase's first call
// never does. Whichever call the deadline catches, the phase's time is the candidate's: timeout.
// task: sum_reduce
// config: {"correctnessDeadlineMs": 4000, "callTimeoutMs": 1500}
// expect: timeout
#include <omp.h>

#define DEADLINE_S 4.0
#define CALL_S 1.35
#define STARTUP_S 0.035 /* from the judge's deadline to the first call */

static double target;
static long calls;

void solve(const float *x, float *out, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += x[i];
  out[0] = (float)s;
  double t = omp_get_wtime();
  if (n >= (1 << 22))
    for (;;) t = omp_get_wtime(); /* timing: never return */
  if (!target) target = t - STARTUP_S + DEADLINE_S;
  /* Calls 0, 3, 6… are followed by another candidate call; the others by the reference's. */
  long c = calls++;
  double until = t + CALL_S;
  if (target <= until) until = c % 3 != 0 ? target : t;
  while (omp_get_wtime() < until) {}
}
