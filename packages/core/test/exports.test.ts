import * as context from '@loopsight/context';
import * as core from '@loopsight/core';
import * as express from '@loopsight/express';
import * as fastify from '@loopsight/fastify';
import * as koa from '@loopsight/koa';
import { expect, it } from 'vitest';

// The public surface: a change here is a change users see.
it('pins the runtime exports of every package', () => {
  expect(Object.keys(core).sort()).toEqual([
    'DEFAULT_ID_PATTERN',
    'MAX_ID_LENGTH',
    'Monitor',
    'ROUTE_NONE',
    'ROUTE_OTHER',
    'ROUTE_UNKNOWN',
    'ROUTE_UNROUTED',
    'createMonitor',
    'currentScope',
    'detach',
    'generateId',
    'idRefusal',
    'isUserFrame',
    'monitorFor',
    'routeLabeler',
    'runInScope',
    'trackRequest',
  ]);
  expect(Object.keys(context).sort()).toEqual([
    'correlationHeaders',
    'createHttpHandler',
    'enablePropagation',
    'getCorrelationId',
    'pinoMixin',
    'traceIdOf',
    'winstonFormat',
    'withCorrelationId',
  ]);
  expect(Object.keys(express)).toEqual(['loopsight']);
  expect(Object.keys(fastify)).toEqual(['loopsight']);
  expect(Object.keys(koa)).toEqual(['loopsight']);
});
