// ESLint for the project's TypeScript and JavaScript: typescript-eslint's recommended rules,
// the folder layering (docs/architecture.md, "Layers") and the size limits. Candidate code
// is data, not ours to lint: it is all C or Python, which ESLint does not read.
import js from '@eslint/js';
import boundaries from 'eslint-plugin-boundaries';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Each layer and the layers it may import; a layer may always import itself. Nothing
 * imports a layer above it: contracts at the bottom, then tasks, sandbox, and env on top;
 * rewards depends only on the contracts, records (the logs, run statistics, report and
 * export) on the contracts, rewards and tasks. The entry points import anything. */
const LAYERS = {
  contracts: [],
  rewards: ['contracts'],
  tasks: ['contracts'],
  sandbox: ['contracts', 'tasks'],
  records: ['contracts', 'rewards', 'tasks'],
  env: ['contracts', 'rewards', 'tasks', 'sandbox', 'records'],
  clients: ['contracts'],
  scripts: ['*'],
  bench: ['*'],
  test: ['*'],
};

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      '.venv-*/',
      '.anvil-cache/',
      // Candidates and fixtures: data the tests feed the sandbox, kept byte for byte.
      'test/hacks/',
      'test/honest/',
      'test/sandbox/',
      'test/torch/',
      'test/torch-hacks/',
      'test/torch-hacks-cpu/',
      'tasks/*/*/solutions/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    languageOptions: { globals: globals.node },
  },
  {
    files: ['env/ui/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
  {
    rules: {
      // `_name` marks a parameter or binding kept for its position; tsc's noUnused* checks the rest.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // Size: counted in code lines (blank lines and comments are free, so that a comment that
      // says why never costs a split); measured on the formatted source.
      'max-lines': ['error', { max: 400, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  {
    // The tests and benchmarks read the server's JSON frames loosely; the product code may not.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.ts'],
    plugins: { boundaries },
    settings: {
      'import/resolver': { typescript: { project: './tsconfig.json' } },
      'boundaries/elements': Object.keys(LAYERS).map((type) => ({ type, pattern: type })),
    },
    rules: {
      'boundaries/no-unknown-files': 'error',
      'boundaries/dependencies': [
        'error',
        {
          default: 'disallow',
          policies: Object.entries(LAYERS).map(([type, below]) => ({
            from: { element: { type } },
            allow: { to: { element: { types: below.includes('*') ? ['*'] : [type, ...below] } } },
          })),
        },
      ],
    },
  },
);
