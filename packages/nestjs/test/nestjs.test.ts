import { frameworks } from '../../../test-support/apps.js';
import { adapterSuite } from '../../../test-support/suite.js';

for (const framework of frameworks.filter((f) => f.name.startsWith('nest'))) adapterSuite(framework);
