import { IsNotEmpty, IsNumber, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';

// Evaluated once when the class is defined, as a decorator argument must be.
const MAX_TTL = Number(process.env.LIVEKIT_MAX_TOKEN_TTL || 86400);

export class CreateTokenDto {
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(256)
  identity?: string;

  @IsString()
  @IsNotEmpty()
  @MaxLength(256)
  roomId: string;

  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(256)
  name?: string;

  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false, maxDecimalPlaces: 0 })
  @Min(1)
  @Max(MAX_TTL)
  ttl?: number;
}
