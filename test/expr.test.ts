import t from 'tap';
import { evaluate } from '../tasks/expr.js';

t.test('integer expressions over shape parameters', async (t) => {
  t.equal(evaluate('(H-k+1)*(W-k+1)', { H: 10, W: 8, k: 3 }), 48);
  t.equal(evaluate('2*M*N*K', { M: 2, N: 3, K: 4 }), 48);
  t.equal(evaluate('n/3', { n: 10 }), 3);
  t.equal(evaluate('-n+12', { n: 2 }), 10);
  t.throws(() => evaluate('n+', { n: 1 }), /unexpected end/);
  t.throws(() => evaluate('m', { n: 1 }), /unknown name m/);
  t.throws(() => evaluate('n; process.exit()', { n: 1 }), /cannot parse/);
});
