import { backpressureSuite, concurrencySuite } from '../../../test-support/backpressure-suite.js';

backpressureSuite('express');
concurrencySuite('express');
