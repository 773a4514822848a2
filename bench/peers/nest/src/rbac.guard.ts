import { CanActivate, ExecutionContext, ForbiddenException, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import type { AuthenticatedUser } from './jwt.strategy';

export const JOIN_CHANNEL = 'JOIN_CHANNEL';

/**
 * JOIN_CHANNEL on the channel named by the body's `roomId` (the original's
 * `@RbacResource({type: CHANNEL, idKey: 'roomId', source: BODY})`), read from the caller's
 * `permissions` claim: `JOIN_CHANNEL` (every channel) or `JOIN_CHANNEL:<roomId>`.
 * Guards run before pipes, so this reads the raw body, as the original's RBAC guard did.
 */
@Injectable()
export class JoinChannelGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<Request & { user?: AuthenticatedUser }>();
    const permissions = request.user?.permissions ?? [];
    const roomId: unknown = request.body?.roomId;
    const allowed =
      permissions.includes(JOIN_CHANNEL) ||
      (typeof roomId === 'string' && permissions.includes(`${JOIN_CHANNEL}:${roomId}`));
    if (!allowed) {
      throw new ForbiddenException(`Insufficient permissions. Required: ${JOIN_CHANNEL}`);
    }
    return true;
  }
}
