/**
 * The global (in the test code's realm) naming the test or suite hook that runs now. The test
 * environment (timed-environment.ts) sets it; jest's own `currentTestName` keeps the last test's
 * name through the hooks after it, so waits in a beforeAll/afterAll would be filed wrongly.
 */
export const CURRENT_TEST = "__haBackendCurrentTest";
