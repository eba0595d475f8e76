import { backpressureSuite } from '../../../test-support/backpressure-suite.js';

backpressureSuite('koa');
