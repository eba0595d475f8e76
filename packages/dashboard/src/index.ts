export { createDashboard } from './dashboard.js';
export type {
  Dashboard,
  DashboardOptions,
  FastifyInstanceLike,
  KoaContextLike,
} from './types.js';
